"""The running monitoring room: `open_room(config)` builds every service once, `Room.close()` ends them.

`records` opens what `veilwatch users` and `veilwatch vault revoke` need too (the database, the
tamper-evident log, the one action recorder); `cameras` holds one `CameraRoom` per camera;
`room` reads every file first, then opens resources on an `ExitStack`, so a failed start leaks
nothing. The web app (`veilwatch.server`) depends on these services, never the other way round.
"""

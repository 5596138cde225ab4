"""Scale-out: `veilwatch anonymize --engine ray` veils archives on a Ray cluster.

    split.py      which videos are cut into parts, where, and what each part needs around it
    parts.py      a worker's jobs: veil one part, veil one whole file, join parts into the output
    worker.py     the Ray actor body: loads the model once, runs jobs
    ray_engine.py connects to Ray, plans jobs, dispatches them, reports progress, finalizes outputs

Nothing here imports Ray at module level except ray_engine.py, which the CLI imports only when
`--engine ray` is given (Ray is an optional extra: `pip install veilwatch[ray]`).
"""

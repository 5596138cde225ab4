"""Scale-out: `veilwatch anonymize --engine ray` veils archives on a Ray cluster.

    split.py      which videos are cut into parts, where, and what each part needs around it
    parts.py      a worker's jobs: veil one part, veil one whole file, join parts into the output
    worker.py     the Ray actor body: loads the model once, runs jobs
    merge.py      one file's summary and report records from its parts (one track id per face)
    ray_engine.py connects to Ray, plans jobs, dispatches them, reports progress, finalizes outputs

Nothing here imports Ray at module level: `ray_engine.load_ray()` does, and the CLI imports this
package only when `--engine ray` is given (Ray is an optional extra: `pip install veilwatch[ray]`).
"""

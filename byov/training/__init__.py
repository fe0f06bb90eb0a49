"""Training: run assembly (`assembly`: config -> specs -> method, data, optimizer, loaders), the
epoch loop (`loop.run`: validation, downstream evaluation, checkpoints), one optimizer step
(`engine`), learning-rate schedules, the run logger and the run-folder lock.

    from byov.training.loop import run
    run(config)   # the resolved flat config of utils/config.py, as train.py passes it
"""

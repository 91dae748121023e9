"""What every pipeline shares: YAML recipes -> dataclasses, the settings every recipe has, checkpoints,
the one training loop, distributed setup, the one predict-to-folder, and the interface a pipeline
implements (``engine.pipeline``). The engine never imports a pipeline: ``pcseg.pipelines`` does the
choosing."""

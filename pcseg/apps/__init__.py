"""Applications built on the library: the demo, the comparison of pipelines, the evaluation report."""

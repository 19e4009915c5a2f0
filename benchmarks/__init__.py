"""nbprod's benchmark suite: ``python -m benchmarks`` (``make bench``) measures nbprod beside a plain
Python script, hand-written DVC + papermill, and bare DVC / kernels, against the targets of issue 6."""

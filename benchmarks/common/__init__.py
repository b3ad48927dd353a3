"""The harness every benchmark uses: a new benchmark is a folder beside the others that adds
no harness code.

* :mod:`~benchmarks.common.constants`: where results go, the adapted modules, the head;
* :mod:`~benchmarks.common.registry`: every method as one JSON file (``benchmarks/configs/``);
* :mod:`~benchmarks.common.methods`: a benchmark's row, a registry method with its lr grid;
* :mod:`~benchmarks.common.experiments`: each row's training parameters, as JSON inputs;
* :mod:`~benchmarks.common.adapter_configs`: each row's ``adapter_config.json``, derived;
* :mod:`~benchmarks.common.views`: each row's view of the recorded runs, derived;
* :mod:`~benchmarks.common.training`: the training loop (single process or DDP);
* :mod:`~benchmarks.common.sweep`: run records and the lr-sweep protocol;
* :mod:`~benchmarks.common.runs`: one recorded training run, and every missing one;
* :mod:`~benchmarks.common.summary`: runs summarised per method;
* :mod:`~benchmarks.common.timing`: the interleaved timing harness;
* :mod:`~benchmarks.common.reporting`: CSV files of result rows;
* :mod:`~benchmarks.common.plotting`: accuracy against adapter parameters;
* :mod:`~benchmarks.common.cli`: the argparse pieces (``--threads``, ``--quick``, ...);
* :mod:`~benchmarks.common.architecture`: MiniLM's architecture with random weights;
* :mod:`~benchmarks.common.data`: WordNet noun glosses and the MiniLM they train;
* :mod:`~benchmarks.common.forgetting`: the forgetting probe a training run may add;
* :mod:`~benchmarks.common.routing`: what the routers of a trained model do;
* :mod:`~benchmarks.common.paper`: the paper's dense construction, a registry method;
* :mod:`~benchmarks.common.alias`: old module paths kept working after a move.
"""

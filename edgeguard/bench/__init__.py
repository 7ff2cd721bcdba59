"""The harness the benchmarks, the demo and the tests are built from, apart from the SDK.

- ``victims``: backdoored (or clean) models of the built-in datasets, trained once and cached.
- ``restorer``: pre-training and fine-tuning of the MAE restorer, cached.
- ``demo``: the ``make demo`` stream.
- ``zoo``: model zoos as JSON files (the scan benchmark's), and the learned-only rule.

The SDK proper (``purify``, ``scan``, ``eigenguard``, ``runtime``, ``deploy``, ``kernels``,
``metrics``, ``models``) never imports this package; the ``edgeguard`` command does, for its
``attack``, ``train``, ``train-mae`` and ``demo`` subcommands.
"""

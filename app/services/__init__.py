"""The dashboard's door to the engine: the only package of ``app/`` that imports ``mtl_core`` (the
pages also draw with :mod:`mtl_core.figures`). One module per job; pages import the ones they need
(``from services import runs, live``) and get plain Python data back (dicts, lists, small
dataclasses, pandas frames). Nothing here draws or calls ``st.*``.

Torch: only :mod:`services.catalog` touches the registries of suites, strategies and balancing
methods, whose modules define ``torch.nn`` models; it imports them lazily, and
:func:`services.catalog.warm_up` does so in a background thread when a session opens, so that the
Runs and Run-view pages never wait for torch. Every other engine module used here imports no torch.

Modules: :mod:`~services.pacing` (live-refresh pace, render timings), :mod:`~services.catalog` (run
store, catalogue, worker pool), :mod:`~services.runs` (building, queueing and listing runs),
:mod:`~services.live` (a run's time series read as it trains), :mod:`~services.results` (final
metrics, single-task baselines, Δm), :mod:`~services.compare` (tables over seeds),
:mod:`~services.studies` (transfer studies and groupings), :mod:`~services.limits` (presenter
limits), :mod:`~services.lessons`, :mod:`~services.playground`, :mod:`~services.data` (CSV uploads,
user suites) and :mod:`~services.downloads`.
"""

"""Training one run: the trainer (:mod:`.trainer`), its events and callbacks (:mod:`.events`), the
per-task gradient matrix (:mod:`.jacobian`), gradient probes (:mod:`.probes`) and TAG's lookahead
affinity (:mod:`.tag`). Imports torch."""

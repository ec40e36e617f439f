"""Runs outside the caller's thread: the SQLite run store (:mod:`.store`), the executors that train
queued runs (:mod:`.executors`: one interface, in-process or the background pool), the worker pool
itself (:mod:`.workers`) and run / study exports (:mod:`.export`)."""

"""Runs outside the caller's thread: the SQLite run store (:mod:`.store`), the executors that train
queued runs (:mod:`.executors`: one interface, in-process or the background pool), the worker pool
itself (:mod:`.workers`), run / study exports (:mod:`.export`) and the labels of runs shown together,
built from the settings that differ between them (:mod:`.labels`)."""

"""Transfer studies and grouping evaluations: the study's design, plan and analysis
(:mod:`.study`), training a chosen grouping against it (:mod:`.grouping_runs`), and the engine API that launches them, records them in the run store and collects
their results (:mod:`.records`), shared by the CLI, the pages and the lessons."""

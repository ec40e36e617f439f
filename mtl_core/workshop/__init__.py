"""Teaching: guided lessons (:mod:`.lessons`, their files shipped in ``mtl_core/assets/lessons``),
the presenter's limits for a shared server (:mod:`.limits`) and the gradient-geometry playground
(:mod:`.playground`)."""

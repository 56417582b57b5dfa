"""Training of the small demo VarNet on simulated k-space (see :mod:`.train_demo`)."""

"""Composition roots: the in-process simulation, the launcher of local processes, the demo and the
scripted project lifecycle (the only code that imports both the desk and the node)."""

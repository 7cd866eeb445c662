"""Wire-neutral core: the data model, the planner, the neutral records a transport sends, renderers."""

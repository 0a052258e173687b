"""Tasks: what a sample's outputs mean. A task turns a batch's outputs into LoadGen response payloads and
scores LoadGen's accuracy log (one module per task, found by name through entry points: `tasks.registry`)."""

"""The workflow engine proper: the document model and its validation, plans, the scheduler,
events and their wire text, node records and secret redaction. No I/O beyond what node bodies
do, no HTTP server, no database."""

"""The operator CLI: `python -m connector_ops ...`.

Answers an operator's questions about the connector's workflows (what happened to a renewal,
where a purchase stands, which card holds are open) and repairs what an operator may repair
(reset a failed workflow, redeliver a Cleeng webhook). It reaches Temporal, Mollie and the
connector's own webhook endpoint with the same settings as the worker.
"""

"""The Exchange Online admin API (InvokeCommand) and the mailbox move service (MRS) of the sandbox.

`backends/exchange.py` routes requests to invoke.py (the InvokeCommand protocol: authorization, paging,
OData shapes); the rest is organised by concern: the wire encodings (wire.py), parameter binding (params.py),
the exception catalogue (errors.py), the cmdlet registry (cmdlets.py), the Exchange objects and identity
resolution (store.py), the cmdlets (recipients.py, orgrel.py, endpoints.py, batches.py) and the move service
(moves.py).  Documented in docs/sandbox/exchange.md.
"""

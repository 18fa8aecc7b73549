"""The Exchange Online admin API (InvokeCommand) and the mailbox move service (MRS) of the sandbox.

`backends/exchange.py` routes requests here; the package is organised by concern: the wire format
(wire.py), parameter binding (params.py), the exception catalogue (errors.py), the Exchange object store
(store.py), the cmdlets (recipients.py, orgrel.py, endpoints.py, batches.py) and the move engine (moves.py).
"""

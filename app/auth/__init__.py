"""Access control: who may read and write which sessions.

- `policy`: the one decision (scopes, session patterns), pure and unit-tested.
- `keys` and `verifier`: the configured key and algorithm; JWT verification and minting.
- `routes`: how each route declares what it requires (`ProtectedRoute`) and the public list.
- `middleware`: the one place every request passes through to have that decision applied.
"""

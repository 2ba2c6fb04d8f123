"""Reconciliation, part 1: importing what Stripe and the banks say happened.

`parsing` turns a file (or the Stripe API) into lines lazily, `camt` reads ISO 20022
camt.053 statements, `imports` stores the lines as external records in one transaction,
`profiles` keeps the banks' CSV mapping profiles, `api` is the HTTP face.
"""

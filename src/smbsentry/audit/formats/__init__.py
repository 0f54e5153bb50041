"""One module per inventory format; each `parse(text, path)` returns (facts, errors).

A parser reports a broken host as an InventoryError in the error list and
carries on with the next host: one bad host in a batch never drops the rest.
"""

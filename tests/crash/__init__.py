"""Crash tests of the delivery ledger: a publication, a sender that dies, and the verdict."""

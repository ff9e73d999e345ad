"""One module per delivery provider, and the registry that picks one by name.

A provider module only builds a batch's request and reads the answer (``..base`` says
what it is given and must return); the send loop around it is the engine's. Adding a
provider touches this folder (a module and a line in ``registry.PROVIDERS``), a fake in
``newsletter.devtools.fakeprovider`` and the contract test.
"""

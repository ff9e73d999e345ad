"""The publication file and mailing lists: ``subscribers/publication.toml`` and member CSVs.

``load_config`` reads and checks the publication, its sources and its lists;
``MemberReader`` streams a list's members (de-duplicated across its files) and reports
each bad row as ``file:line: reason``; ``edit`` changes member files safely; ``signups``
appends confirmed readers and copies the sign-up journal into the files.

Every command reads the publication file, few touch member files: the names below are
loaded from their modules on first use (PEP 562), so importing ``lists.config`` does not
load the member-file machinery (file locks, CSV checks, the suppression store) as well.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .address import address_key, normalise_address
    from .admin import (
        ExportReport,
        ImportReport,
        ListStats,
        add_member,
        export_members,
        import_members,
        list_stats,
        reader_for,
        remove_address,
    )
    from .config import ConfigFileError, PublicationConfig, load_config, load_config_file
    from .edit import append_members, remove_member
    from .members import Member, MemberReader
    from .problems import Counts, Problem, Severity
    from .reading import iter_members
    from .signups import ApplyReport, append_rows, apply_all, apply_journal

#: The module of this package each exported name comes from.
_HOMES = {
    "address_key": "address",
    "normalise_address": "address",
    "ExportReport": "admin",
    "ImportReport": "admin",
    "ListStats": "admin",
    "add_member": "admin",
    "export_members": "admin",
    "import_members": "admin",
    "list_stats": "admin",
    "reader_for": "admin",
    "remove_address": "admin",
    "ConfigFileError": "config",
    "PublicationConfig": "config",
    "load_config": "config",
    "load_config_file": "config",
    "append_members": "edit",
    "remove_member": "edit",
    "Member": "members",
    "MemberReader": "members",
    "iter_members": "reading",
    "Counts": "problems",
    "Problem": "problems",
    "Severity": "problems",
    "ApplyReport": "signups",
    "append_rows": "signups",
    "apply_all": "signups",
    "apply_journal": "signups",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # found once; later look-ups do not come here
    return value


__all__ = [
    "ApplyReport",
    "ConfigFileError",
    "Counts",
    "ExportReport",
    "ImportReport",
    "ListStats",
    "Member",
    "MemberReader",
    "Problem",
    "PublicationConfig",
    "Severity",
    "add_member",
    "address_key",
    "append_members",
    "append_rows",
    "apply_all",
    "apply_journal",
    "export_members",
    "import_members",
    "iter_members",
    "list_stats",
    "load_config",
    "load_config_file",
    "normalise_address",
    "reader_for",
    "remove_address",
    "remove_member",
]

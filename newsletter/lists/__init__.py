"""The publication file and mailing lists: ``subscribers/publication.toml`` and member CSVs.

``load_config`` reads and checks the publication, its sources and its lists;
``MemberReader`` streams a list's members (de-duplicated across its files) and reports
each bad row as ``file:line: reason``; ``edit`` changes member files safely; ``signups``
appends confirmed readers and copies the sign-up journal into the files.
"""

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
from .members import Member, MemberReader, iter_members
from .problems import Counts, Problem, Severity
from .signups import ApplyReport, append_rows, apply_all, apply_journal

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

"""The scheduler: APScheduler jobs that call the ``Publisher`` on each list's cadence.

``scheduler`` wires APScheduler (jobs kept in the project's database), ``jobs`` holds the
job functions, ``cadence`` what they do per kind of list, ``triggers`` the daylight-saving
safe digest schedule and ``lock`` the rule of one scheduler per database.
"""

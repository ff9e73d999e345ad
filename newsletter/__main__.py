"""``python -m newsletter`` and the ``newsletter`` command.

A command is a short process whose modules make some hundred thousand objects that live
until it exits. The collector is kept off while they load (it would walk them all, several
times, and free nothing), and they are then frozen (moved out of its generations): neither
the collections while the command runs nor those of the interpreter's exit walk them again.
Together, about a tenth of a second of every short command's CPU.
"""

import gc


def main() -> None:
    gc.disable()
    from .cli import main as run_command  # here: loaded with the collector off

    gc.freeze()
    gc.enable()
    try:
        run_command()
    finally:
        gc.freeze()  # what the command itself loaded and made, before the exit walks it


if __name__ == "__main__":
    main()

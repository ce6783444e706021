"""``python -m anyir`` runs the CLI (handy under torchrun: ``torchrun ... -m anyir train``)."""

from anyir.cli import main

if __name__ == "__main__":
    main()

"""Entry point: see src/ganlab/sample.py."""
from ganlab.sample import main

if __name__ == "__main__":
    main()

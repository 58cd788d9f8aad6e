"""Entry point: see src/ganlab/evaluate.py."""
from ganlab.evaluate import main

if __name__ == "__main__":
    main()

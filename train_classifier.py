"""Entry point: see src/ganlab/train_classifier.py."""
from ganlab.train_classifier import main

if __name__ == "__main__":
    main()

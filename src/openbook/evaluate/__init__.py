"""Scoring and writing results: MAP@3, accuracy, Kaggle submissions."""

"""Synthetic exam questions from the corpus (`openbook generate`): passages chosen near an exam's
questions or a topic list (`sources`), a language model writing one question per passage under a
JSON-schema grammar (`writer`), filters that count every rejection with its reason (`filters`), and
the resumable run that balances answer letters and writes a Kaggle-layout exam (`run`)."""

from openbook.generate.run import GenerateSettings, GenerationReport, generate

__all__ = ["GenerateSettings", "GenerationReport", "generate"]

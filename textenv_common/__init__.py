"""The bottom layer of textenv: small helpers that ``textenv``, ``rewards`` and ``agents`` all use.

It imports none of those packages, so each of them can import it without a cycle. One module per job:

- :mod:`textenv_common.atomic`: atomic file and folder writes.
- :mod:`textenv_common.intervals`: the Wilson interval and Student's t critical value.
- :mod:`textenv_common.checks`: the one integer check for configuration values.
- :mod:`textenv_common.formatting`: the one number formatter of reports and tables.
- :mod:`textenv_common.hf`: the one Hugging Face loading core (tokenizer, pad-token rule, model) and block finder.

Modules that need heavy libraries (torch, transformers) import them inside functions, so importing this
package stays cheap.
"""

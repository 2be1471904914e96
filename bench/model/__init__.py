"""Model access: loading a model and tokenizer, choosing its dtype, rendering chat turns, batching token
ids, hooks on named modules and layer specs, and the forward-pass machinery that makes scoring fast
(shared prefixes, replay of unsteered layers)."""

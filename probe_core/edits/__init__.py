"""Interventions: target editors, edit methods (activation, guided, latent shift), the scores of
an edited image, and the batch evaluation of edits with controls."""

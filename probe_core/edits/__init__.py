"""Interventions as one path: what is asked (`request.EditRequest`) and how
(`edit_settings.EditSettings`) -> `plan.plan` (the one place an `Edit` is built) ->
`run.intervene` (the methods steer an edited re-run) -> `outcome.outcome` (the one scorer, read
by the app's verdict card, the CLI and `intervene-eval`)."""

-- The rebuild's view of retention (cli/prune.py, migration 0007): statuses of pruned
-- campaigns stay pruned. Loaded by projector/rebuild.py; run inside the swap, after
-- message_statuses is locked, so a prune batch committed before it is seen and one
-- committed after it deletes from the swapped-in table itself.

-- name: drop_pruned_from_rebuild
-- A message id some live ledger row holds (adopted since it was pruned) is that row's.
DELETE FROM projector_rebuild.message_statuses AS s
USING public.pruned_messages AS p
WHERE s.message_id = p.message_id
  AND NOT EXISTS (SELECT 1 FROM public.ledger AS l WHERE l.message_id = p.message_id)

-- name: drop_pruned_rejects
-- The replay set aside again the records of pruned messages it had set aside before
-- (keyed by message id); the same rows prune deleted go again.
DELETE FROM public.status_rejects AS r
USING public.pruned_messages AS p
WHERE p.message_id = encode(r.message_key, 'escape')
  AND NOT EXISTS (SELECT 1 FROM public.ledger AS l WHERE l.message_id = p.message_id)

-- Resource servers managed at run time (RFC 8707): a stored client is found by the
-- resource_uri of its document, and no two stored clients may share one. The unique
-- expression index is both the look-up and the rule (a concurrent create with the same
-- resource_uri fails on it). Clients without a resource_uri are not indexed.
CREATE UNIQUE INDEX IF NOT EXISTS oauth_clients_resource_uri_key
  ON oauth_clients ((document ->> 'resource_uri'))
  WHERE document ->> 'resource_uri' IS NOT NULL;

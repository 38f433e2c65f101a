# ACLs on: nothing reads or writes the catalog without a token. The stacks pass the token
# (CONSUL_HTTP_TOKEN, from deploy/stack.env or the environment) as the agent's initial
# management and agent token with -hcl, so it is written in one place only.
acl {
  enabled                  = true
  default_policy           = "deny"
  enable_token_persistence = true
}

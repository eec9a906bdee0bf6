"""Kubernetes manifests for the loop: vLLM replicas per version, the gateway, the chat and
review pages, PostgreSQL, and the Secret they share. `spec` reads what the user asked
for, `render` turns it into plain YAML from templates/k8s/."""

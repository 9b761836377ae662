"""The lab's kernel data plane: namespaces, links, rules, DNS servers, the outside world, the host guard."""

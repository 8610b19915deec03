"""Result caching: keys, a byte-bounded TTL cache, single flight and the data version."""

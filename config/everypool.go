package config

// EveryPool returns s.Pools, or, for settings not made by Load (Defaults,
// or a Settings filled by hand, as the demo's), the one default pool its
// top-level fields make.
func (s *Settings) EveryPool() []Pool {
	if len(s.Pools) > 0 {
		return s.Pools
	}
	return []Pool{s.defaultPool()}
}

package refplatform

// Parked returns how many long polls are waiting, so a test can act once a
// poll is parked rather than after a sleep.
func (p *Platform) Parked() int { return int(p.parked.Load()) }

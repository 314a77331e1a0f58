package mailserver

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
)

// Sizes of the seeded mailbox.
const (
	SampleConversations = 40                                    // customer threads
	SampleReplies       = 15                                    // Sent: the user's replies
	SampleFollowUps     = 6                                     // customer answers to a reply
	SampleInbox         = SampleConversations + SampleFollowUps // INBOX messages
)

// The demo user's persona, in whose name the sample replies are written.
const (
	csmName  = "Sam Rivera"
	csmFirst = "Sam"
	csmTitle = "Customer Success Manager"
)

// csmZone is the user's time zone in reply dates (fixed offsets keep the
// output independent of the host's tzdata).
var csmZone = time.FixedZone("EDT", -4*3600)

// sample is one generated message.
type sample struct {
	raw      []byte
	received time.Time // INTERNALDATE
	flags    []imap.Flag
}

type contact struct {
	first, name, local, title string
}

type company struct {
	name, domain string
	zone         *time.Location
	html         bool // their mail client sends multipart/alternative
	contacts     []contact
}

type attachKind int

const (
	noAttachment attachKind = iota
	usageCSV
	inviteICS
	screenshotPNG
)

// topic is one kind of customer conversation. Texts hold one paragraph per
// line group separated by blank lines and {placeholders} (see vars).
type topic struct {
	subject  string
	body     string // the customer's first message, greeting included
	reply    string // the user's answer, without greeting
	followUp string // the customer's answer to the reply
	greet    string // greeting of the reply; "" is "Hi {first},"
	signoff  string // the customer's sign-off; "" picks a common English one
	attach   attachKind
	only     string // localized topic: the one company domain it belongs to
	pair     bool   // needs a second contact ({other}) at the company
}

func fz(name string, hours float64) *time.Location {
	return time.FixedZone(name, int(hours*3600))
}

func person(first, last, title string) contact {
	return contact{first: first, name: first + " " + last, title: title,
		local: strings.ToLower(first + "." + last)}
}

// companies: the first twelve write in English and take any generic topic;
// the others belong to one localized topic each. Domains use the reserved
// .example TLD (RFC 2606).
var companies = []company{
	{"Acme Logistics", "acme-logistics.example", fz("CST", -6), false, []contact{person("Dana", "Whitfield", "VP Operations"), person("Marcus", "Lee", "IT Manager")}},
	{"Northwind Traders", "northwind.example", fz("PST", -8), true, []contact{person("Priya", "Nair", "Head of Customer Operations"), person("Tom", "Becker", "Finance Manager")}},
	{"Bluefin Analytics", "bluefin-analytics.example", fz("EST", -5), false, []contact{person("Jordan", "Ellis", "Director of Data"), person("Aisha", "Khan", "Analytics Lead")}},
	{"Harbor & Pine", "harborandpine.example", fz("EST", -5), true, []contact{person("Olivia", "Grant", "Operations Lead")}},
	{"Kestrel Robotics", "kestrel-robotics.example", fz("MST", -7), false, []contact{person("Ben", "Okafor", "Engineering Manager"), person("Lena", "Park", "Program Manager")}},
	{"Meridian Travel", "meridiantravel.example", fz("GMT", 0), true, []contact{person("Charlotte", "Hughes", "Head of Support")}},
	{"Oakridge Credit Union", "oakridgecu.example", fz("EST", -5), true, []contact{person("Greg", "Patterson", "CIO"), person("Maria", "Santos", "Compliance Officer")}},
	{"Pioneer Solar", "pioneersolar.example", fz("MST", -7), false, []contact{person("Kevin", "Zhang", "Sales Operations Manager")}},
	{"Quarry Labs", "quarrylabs.example", fz("PST", -8), false, []contact{person("Nina", "Rossi", "COO")}},
	{"Riverbend School District", "riverbend-schools.example", fz("CST", -6), true, []contact{person("Patricia", "Moore", "IT Director"), person("Daniel", "Kim", "Systems Administrator")}},
	{"Tidewater Freight", "tidewaterfreight.example", fz("EST", -5), false, []contact{person("Sean", "Murphy", "Logistics Systems Lead")}},
	{"Vantage Media", "vantagemedia.example", fz("AEST", 10), true, []contact{person("Chloe", "Nguyen", "Marketing Operations Manager"), person("Liam", "Walsh", "Head of Analytics")}},

	{"Lumière Analytique", "lumiere-analytique.example", fz("CET", 1), true, []contact{{first: "François", name: "François Lefèvre", local: "francois.lefevre", title: "Directeur des opérations"}}},
	{"Müller & Söhne GmbH", "mueller-soehne.example", fz("CET", 1), false, []contact{{first: "Jürgen", name: "Jürgen Weiß", local: "juergen.weiss", title: "Leiter Buchhaltung"}}},
	{"株式会社サクラシステムズ", "sakura-systems.example", fz("JST", 9), true, []contact{{first: "花子", name: "佐藤 花子", local: "hanako.sato", title: "情報システム部"}}},
	{"Nordlys Energi AS", "nordlys-energi.example", fz("CET", 1), false, []contact{{first: "Søren", name: "Søren Ødegård", local: "soren.odegard", title: "Driftssjef"}}},
}

const genericCompanies = 12

// genericTopics is the number of topics any generic company can have; the
// localized ones follow.
const genericTopics = 20

var topics = []topic{
	{
		subject: "Renewal question",
		body: `Hi {csm},

Our contract comes up for renewal on {renewal} and I'm putting together next year's budget. Before I send it to finance, could you confirm a few things?

- Will the per-seat price stay the same if we renew for another 12 months?
- Is there a discount for a 24-month term?
- We're at {seats} seats today and may add about 10 mid-year. How would that be billed?

Ideally I'd have this by the end of next week.`,
		reply: `Thanks for reaching out ahead of the renewal. Your per-seat price stays the same for a 12-month renewal, and a 24-month term comes with an 8% discount on the whole contract. Seats added mid-year are prorated to your renewal date, so you only pay for the months you use them.

I'll send a formal quote for both options by Wednesday. Happy to walk your finance team through it if that helps.`,
		followUp: `Thanks, that's very helpful. Please send both quotes and copy our finance team. I think the 24-month option will be an easy sell.`,
	},
	{
		subject: "Onboarding call next week",
		body: `Hi {csm},

The paperwork is signed and the team is eager to get started. Could we schedule the onboarding call for next week? {weekday} afternoon works best for us, anywhere between 1 and 4pm our time.

I've attached an invite with a placeholder slot; feel free to move it. On our side it will be me, our IT manager and two team leads.

Looking forward to it!`,
		reply: `Welcome aboard! {weekday} at 2pm your time works for me, and I've accepted the invite. I'll bring a short agenda: account setup and SSO, importing your existing data, and a walkthrough of the reporting dashboard.

If your IT manager can have admin access to your identity provider during the call, we can finish the SSO setup live.`,
		followUp: `Perfect, see you then. Our IT manager will have admin access ready.`,
		attach:   inviteICS,
	},
	{
		subject: "Invoice {invoice}: PO number missing",
		body: `Hello,

We received invoice {invoice} for {amount}, but it doesn't reference our purchase order, so our accounts payable team can't process it. Could you reissue it with PO number {po}?

Also, please make sure future invoices go to ap@{domain} rather than to me directly.`,
		reply:    `Sorry about that. I've asked our billing team to reissue {invoice} with {po} on it; you should receive the corrected invoice within two business days. I've also changed the billing contact to ap@{domain} for all future invoices.`,
		followUp: `Received the corrected invoice, thank you. AP has scheduled the payment.`,
	},
	{
		subject: "Usage report for {month}",
		body: `Hi {csm},

Attached is our export of active users for {month}. A few numbers look off to me: the dashboard says {seats} active seats, but our own count is lower because several people left the company in the middle of the month.

Can you check whether deactivated users still count toward our seat total?`,
		reply: `Good catch. Deactivated users stop counting toward seats at the end of the billing period in which they were deactivated, which is why {month} still includes them. They'll drop off in next month's figure.

If you'd like, I can send a reconciled report that lists which users are counted and why.`,
		followUp: `That explains it. Yes please, a reconciled report would help with our internal audit.`,
		attach:   usageCSV,
	},
	{
		subject: "SSO setup with Okta",
		body: `Hi {csm},

We're trying to enable SSO with Okta and we're stuck at the SAML step. After signing in through Okta, users land back on the login page with the message "Your account is not provisioned".

We've double-checked the ACS URL and the entity ID. Is there something we need to enable on your side first?`,
		reply: `That message usually means just-in-time provisioning is turned off for your workspace, so only users who already exist can sign in with SSO. I've enabled JIT provisioning for {company}; please try again with a user who doesn't have an account yet.

If it still fails, send me the time of the attempt and I'll check our logs.`,
		followUp: `It works now, thanks! New users are created on their first sign-in.`,
	},
	{
		subject: "Adding {extra} seats for our support team",
		body: `Hi {csm},

Our support team is growing and we'd like to add {extra} seats starting on the 1st of next month. Could you send an order form? We'd like them on the same plan as the rest of the account ({plan}).`,
		reply:    `Great to hear the team is growing! I've sent the order form for {extra} additional {plan} seats for signature; they'll be prorated to your renewal date. Once it's signed, the seats are available immediately.`,
		followUp: `Signed and returned. Thanks for the quick turnaround!`,
	},
	{
		subject: "Feature request: export to Google Sheets",
		body: `Hi {csm},

Our analysts keep asking for a direct export of reports to Google Sheets. Today they download a CSV and re-import it every Monday, which is tedious and error-prone.

Is this on the roadmap? We'd be happy to join a beta or talk to your product team.`,
		reply: `Thanks, this is a common request, and I've added {company} to it with your use case. The product team is planning scheduled exports this quarter, and Google Sheets is one of the first destinations.

I'll put you on the beta list and let you know as soon as it opens.`,
		followUp: `Great news. Please keep us posted, the analysts are excited.`,
	},
	{
		subject: "Data retention and deletion policy",
		body: `Hi {csm},

Our security team is reviewing vendors ahead of our annual audit. Could you tell us how long you keep customer data after a contract ends, and whether we can request deletion earlier? A link to the relevant section of your DPA would be ideal.`,
		reply: `Customer data is kept for 30 days after the end of a contract so that it can be exported, then permanently deleted within the following 30 days, backups included. You can request earlier deletion at any time from the admin console or by writing to us.

The details are in section 7 of the DPA; I'll send you the signed copy for your records.`,
		followUp: `Thank you, that answers the auditors' questions.`,
	},
	{
		subject: "Agenda for our quarterly business review",
		body: `Hi {csm},

Ahead of our QBR on {day}, here is what we'd like to cover:

- Adoption across the regional offices
- The reporting issues we raised last month
- Plans for the second half of the year, including the new warehouse

Could you bring usage numbers broken down by team? Our VP will join for the first 30 minutes.`,
		reply:    `Thanks for sending the agenda. I'll prepare usage by team and by office, plus a summary of the reporting fixes that shipped since we last spoke. I'll also invite our solutions engineer for the warehouse discussion.`,
		followUp: `Sounds good. I've added your solutions engineer to the invite.`,
	},
	{
		subject: "Urgent: data sync delayed since Tuesday",
		body: `Hi {csm},

Since Tuesday, changes made in our ERP take three to four hours to show up in your platform. It used to be a few minutes. Our dispatch team depends on this data and is working from stale numbers.

We opened ticket {ticket} with support yesterday but haven't had an update. Can you help escalate?`,
		reply: `I'm sorry for the disruption. I've escalated ticket {ticket} to our engineering on-call. They found a backlog in the import queue for a subset of accounts, including yours, and a fix is being deployed now.

I'll update you by 5pm today and send a written summary once it's resolved.`,
		followUp: `Sync times are back to normal this morning. Thanks for pushing on this. A short incident summary for our leadership would be appreciated.`,
	},
	{
		subject: "Introducing our new platform admin",
		body: `Hi {csm},

I'd like to introduce {other} (copied), who takes over as the main admin of our account next month. I'm moving to a new role internally but will still be around for questions.

Could you give {otherfirst} admin rights and add them to your customer newsletter?`,
		reply:    `Thanks for the introduction, and congratulations on the new role! {otherfirst}, welcome: I've given you admin rights and added you to our newsletter. Let's find 30 minutes next week for a walkthrough of the admin console.`,
		followUp: `Thanks {csm}! {otherfirst} will send you a few times for the walkthrough.`,
		pair:     true,
	},
	{
		subject: "Security questionnaire for our vendor review",
		body: `Hello {csm},

As part of our annual vendor review, we need your team to complete our security questionnaire. It has about 40 questions, mostly on access control, encryption and incident response. Could you return it by {due}?

If you already have a SOC 2 Type II report, sharing it may let us skip half of the questions.`,
		reply:    `Happy to help. I've requested our SOC 2 Type II report for you under NDA; it should arrive from our trust portal today. Our security team will answer the remaining questions and return them by {due}.`,
		followUp: `Got the report, thanks. We'll wait for the remaining answers.`,
	},
	{
		subject: "Training session for new hires",
		body: `Hi {csm},

Eight new team members start in two weeks. Do you offer a live training session, or should we point them to the online academy? A one-hour session covering the basics would be ideal.`,
		reply:    `We do! I can run a one-hour live session for your new hires, and I'll share the recording and the academy's beginner path so they can continue on their own. Could you send me two or three dates that work?`,
		followUp: `How about {day} at 10am, or the following day at the same time?`,
	},
	{
		subject: "Hitting API rate limits",
		body: `Hi {csm},

Our nightly integration started failing last week with HTTP 429 responses. We sync around 50,000 records per night, which hasn't changed. Did the API rate limits change recently? Is there a way to raise ours?`,
		reply: `The API limits did change at the start of the month: they're now enforced per hour instead of per day. For a nightly batch of your size, the bulk endpoint is a better fit; it accepts 1,000 records per request and is counted per request, not per record.

I've asked our solutions engineer to send your developers an example.`,
		followUp: `Switching to the bulk endpoint fixed it, and the job now runs in a quarter of the time.`,
	},
	{
		subject: "Considering a move to a smaller plan",
		body: `Hi {csm},

I'll be honest: budgets are tight this year and leadership has asked us to cut software spend. We're considering moving from {plan} to a smaller plan, or reducing seats, at renewal. Before we decide, could we talk about options?`,
		reply: `Thanks for being upfront, I appreciate it. Let's look at your actual usage together: I suspect there's room to reduce seats without losing features you rely on.

Are you free for 30 minutes on {weekday}? I'll bring a usage breakdown and a couple of options.`,
		followUp: `{weekday} works. I'll bring our finance manager too.`,
	},
	{
		subject: "Thank you!",
		body: `Hi {csm},

Just a quick note to say thank you for your help during the migration. The team is really happy with how smoothly it went, and the new dashboards are already part of our weekly meetings.`,
		reply:    `That's wonderful to hear, thank you for letting me know! I'll pass it on to the migration team. Let's check in next month to see how the dashboards are working for you.`,
		followUp: `Sounds good, talk then.`,
	},
	{
		subject: "Question after the webinar",
		body: `Hi {csm},

I attended yesterday's webinar on automated workflows. Can the approval workflow that was shown route requests to different approvers depending on the amount? We need anything over $10,000 to go to our CFO.`,
		reply:    `Yes: approval rules can branch on any numeric field, including the amount. You'd add a condition "amount greater than 10,000" that routes to your CFO, with everything else going to the team lead. I'll send you a short video showing the setup.`,
		followUp: `The video was perfect, we've set it up. Thanks!`,
	},
	{
		subject: "Change of billing contact",
		body: `Hello,

Please note that our billing contact has changed. Invoices should now go to finance@{domain}, to the attention of {name}. Our billing address stays the same.

Could you confirm once this is updated?`,
		reply:    `Done: invoices will now go to finance@{domain}, to the attention of {name}. The next invoice will be the first one sent to the new address.`,
		followUp: `Confirmed on our side, thank you.`,
	},
	{
		subject: "Error on the reports dashboard",
		body: `Hi {csm},

Since this morning, the reports dashboard shows "Something went wrong" for several of our users. Screenshot attached. It happens in Chrome and Edge, and clearing the cache didn't help.

Is there a known issue?`,
		reply:    `Thanks for the screenshot, it helped. A dashboard widget failed for accounts with more than 500 saved reports; it was fixed an hour ago. Could you ask your users to reload the page and let me know if anyone still sees the error?`,
		followUp: `All good now, thanks!`,
		attach:   screenshotPNG,
	},
	{
		subject: "Beta access for the new analytics dashboard",
		body: `Hi {csm},

We saw the announcement about the new analytics dashboard. Could {company} join the beta? We'd be happy to share feedback; our analysts are heavy users of the current reports.`,
		reply:    `Absolutely, I've added {company} to the beta. It will appear under Reports > Analytics (beta) within a day. I'll check in after two weeks to collect your team's feedback.`,
		followUp: `It's there, thanks. First impressions are very positive.`,
	},

	{
		only:    "lumiere-analytique.example",
		subject: "Question sur le renouvellement – tarifs et facturation en euros",
		body: `Bonjour {csm},

Notre contrat arrive à échéance dans deux mois et je prépare le budget de l'année prochaine. Pourriez-vous me confirmer que le tarif par utilisateur reste inchangé ? Nous envisageons également de passer à {seats} licences.

Par ailleurs, serait-il possible de recevoir désormais des factures libellées en euros ?

Merci d'avance pour votre retour.`,
		signoff: "Cordialement,",
		greet:   "Bonjour François,",
		reply: `Thank you for your message. Yes, your per-seat price stays the same at renewal, and we can invoice in euros from now on; I've updated your account accordingly.

I'll send you a quote for {seats} seats this week.`,
		followUp: `Parfait, merci beaucoup. J'attends le devis avec impatience.`,
	},
	{
		only:    "mueller-soehne.example",
		subject: "Rückfrage zur Rechnung {invoice} – Überweisung",
		body: `Sehr geehrter Herr Rivera,

wir haben Ihre Rechnung {invoice} über {amounteur} erhalten. Leider fehlt darauf unsere Umsatzsteuer-Identifikationsnummer (DE{vat}), die für den innergemeinschaftlichen Erwerb erforderlich ist.

Könnten Sie uns bitte eine korrigierte Rechnung zusenden? Die Überweisung erfolgt dann umgehend.

Vielen Dank im Voraus.`,
		signoff:  "Mit freundlichen Grüßen",
		greet:    "Dear Mr. Weiß,",
		reply:    `Thank you for pointing this out, and apologies for the inconvenience. I've asked our billing team to reissue invoice {invoice} with your VAT ID DE{vat}; you'll receive it within two business days.`,
		followUp: `Vielen Dank, die korrigierte Rechnung ist angekommen. Die Zahlung ist veranlasst.`,
	},
	{
		only:    "sakura-systems.example",
		subject: "オンボーディングの日程について",
		body: `Sam Rivera 様

いつもお世話になっております。株式会社サクラシステムズの佐藤です。

来週のオンボーディングの件でご連絡いたしました。弊社は水曜日または木曜日の午前中（日本時間）であれば参加可能です。当日は情報システム部から3名が参加する予定です。

ご都合のよい日時をお知らせいただけますでしょうか。

よろしくお願いいたします。`,
		signoff:  "-",
		greet:    "Dear Sato-san,",
		reply:    `Thank you for your message. Thursday at 10:00 JST works well for us; I'll send a calendar invitation with a video link shortly. We'll cover account setup, SSO and reporting, with slides in Japanese.`,
		followUp: `ご調整いただきありがとうございます。木曜日10時で承知いたしました。当日はどうぞよろしくお願いいたします。`,
	},
	{
		only:    "nordlys-energi.example",
		subject: "Go-live done 🎉 – thank you!",
		body: `Hi {csm},

We flipped the switch on Monday and all 14 sites in Trøndelag and Nordland are now live. Not a single ticket from the field crews so far, which must be a first.

Thanks to you and the team for your patience with our endless questions about the Bodø depot. Next up: the rollout in Tromsø in the spring.`,
		signoff:  "Takk og hilsen,",
		reply:    `Congratulations on the go-live, and thank you for the kind words! It was a pleasure working with your team. Let's start planning the Tromsø rollout in January; I'll send a few dates.`,
		followUp: `January is perfect. Talk then!`,
	},
}

var englishSignoffs = []string{"Thanks,", "Best,", "Best regards,", "Cheers,", "Kind regards,", "Many thanks,"}

// generator writes sample mail. It is deterministic: the same seed, user
// and clock readings give the same bytes. Not safe for concurrent use.
type generator struct {
	rng        *rand.Rand
	user       string // the demo user's address
	userDomain string
}

func newGenerator(seed uint64, user string) *generator {
	return &generator{
		rng:        rand.New(rand.NewPCG(seed, 0x1b0c5e1a7)),
		user:       user,
		userDomain: user[strings.LastIndexByte(user, '@')+1:],
	}
}

// conv is one conversation being written.
type conv struct {
	t    *topic
	co   *company
	who  contact
	cc   *contact
	vars *strings.Replacer

	first, reply *message
}

// mailbox returns the seeded INBOX and Sent for a clock reading of now, each
// in INTERNALDATE order.
func (g *generator) mailbox(now time.Time) (inbox, sent []sample) {
	now = now.Truncate(time.Second)
	convs := g.conversations()

	// One conversation per 0.75-day slot over the last 30 days, at office
	// hours in the customer's zone; slot 0 is the most recent.
	for i, c := range convs {
		slot := float64(i) + g.rng.Float64()
		daysAgo := int(slot * 30 / SampleConversations)
		local := now.In(c.co.zone).AddDate(0, 0, -daysAgo)
		start := time.Date(local.Year(), local.Month(), local.Day(), 8+g.rng.IntN(10), g.rng.IntN(60), g.rng.IntN(60), 0, c.co.zone)
		for start.After(now.Add(-10 * time.Minute)) {
			start = start.AddDate(0, 0, -1)
		}
		c.vars = g.vars(c, start)
		c.first = g.customerMessage(c, start, nil)
	}

	// Replies to conversations at least 48 hours old, so that the reply
	// (within 8 hours) and a follow-up (within 31 hours of it) are in the
	// past.
	var old []int
	for i, c := range convs {
		if c.first.date.Before(now.Add(-48 * time.Hour)) {
			old = append(old, i)
		}
	}
	g.rng.Shuffle(len(old), func(i, j int) { old[i], old[j] = old[j], old[i] })
	replied := old[:SampleReplies]
	for k, i := range replied {
		c := convs[i]
		at := c.first.date.Add(30*time.Minute + time.Duration(g.rng.IntN(450))*time.Minute)
		c.reply = g.replyMessage(c, at)
		sent = append(sent, sample{raw: c.reply.bytes(g), received: c.reply.date, flags: []imap.Flag{imap.FlagSeen}})
		if k < SampleFollowUps {
			fu := g.customerMessage(c, officeHours(at.Add(time.Hour+time.Duration(g.rng.IntN(19*60))*time.Minute), c.co.zone), c.reply)
			inbox = append(inbox, g.inbound(fu, now, false))
		}
	}
	repliedSet := map[*conv]bool{}
	for _, i := range replied {
		repliedSet[convs[i]] = true
	}
	for _, c := range convs {
		inbox = append(inbox, g.inbound(c.first, now, repliedSet[c]))
	}
	byDate := func(l []sample) {
		sort.SliceStable(l, func(i, j int) bool { return l[i].received.Before(l[j].received) })
	}
	byDate(inbox)
	byDate(sent)
	return inbox, sent
}

// officeHours moves t, if it falls outside 8:00-19:00 in zone, to the next
// morning there, up to 11 hours later.
func officeHours(t time.Time, zone *time.Location) time.Time {
	l := t.In(zone)
	if h := l.Hour(); h >= 8 && h < 19 {
		return t
	}
	if l.Hour() >= 19 {
		l = l.AddDate(0, 0, 1)
	}
	return time.Date(l.Year(), l.Month(), l.Day(), 8, l.Minute(), l.Second(), 0, zone)
}

// fresh returns a new customer message dated now, as it arrives.
func (g *generator) fresh(now time.Time) sample {
	now = now.Truncate(time.Second)
	t := &topics[g.rng.IntN(len(topics))]
	c := &conv{t: t, co: g.companyFor(t, g.rng.IntN(genericCompanies))}
	g.people(c)
	start := now.Add(-time.Duration(2+g.rng.IntN(40)) * time.Second)
	c.vars = g.vars(c, start)
	m := g.customerMessage(c, start, nil)
	s := g.inbound(m, now, false)
	s.received = now
	return s
}

// conversations picks a topic and a company for every conversation: every
// topic and every company at least once, whatever the seed.
func (g *generator) conversations() []*conv {
	order := g.rng.Perm(len(topics))
	for len(order) < SampleConversations {
		order = append(order, g.rng.IntN(genericTopics))
	}
	coOrder := g.rng.Perm(genericCompanies)
	next := 0
	convs := make([]*conv, SampleConversations)
	for i, ti := range order[:SampleConversations] {
		t := &topics[ti]
		c := &conv{t: t}
		if t.only != "" {
			c.co = g.companyFor(t, 0)
		} else {
			c.co = g.companyFor(t, coOrder[next%genericCompanies])
			next++
		}
		g.people(c)
		convs[i] = c
	}
	return convs
}

// companyFor returns the company of a localized topic, or else the first
// generic company from index i on that suits t.
func (g *generator) companyFor(t *topic, i int) *company {
	if t.only != "" {
		for k := range companies {
			if companies[k].domain == t.only {
				return &companies[k]
			}
		}
	}
	for k := 0; k < genericCompanies; k++ {
		co := &companies[(i+k)%genericCompanies]
		if !t.pair || len(co.contacts) > 1 {
			return co
		}
	}
	panic("mailserver: no company for topic " + t.subject)
}

// people picks who writes and who is copied.
func (g *generator) people(c *conv) {
	n := len(c.co.contacts)
	w := g.rng.IntN(n)
	c.who = c.co.contacts[w]
	if n > 1 && (c.t.pair || g.rng.IntN(5) == 0) {
		other := c.co.contacts[(w+1)%n]
		c.cc = &other
	}
}

var weekdays = []string{"Monday", "Tuesday", "Wednesday", "Thursday", "Friday"}

// vars draws the placeholder values of a conversation started at start.
func (g *generator) vars(c *conv, start time.Time) *strings.Replacer {
	seats := 20 + 5*g.rng.IntN(21)
	other, otherFirst := "", ""
	if c.cc != nil {
		other, otherFirst = c.cc.name, c.cc.first
	}
	amount := seats * (360 + 12*g.rng.IntN(20))
	next := start.AddDate(0, 0, 7+g.rng.IntN(7))
	for next.Weekday() == time.Saturday || next.Weekday() == time.Sunday {
		next = next.AddDate(0, 0, 1)
	}
	return strings.NewReplacer(
		"{csm}", csmFirst,
		"{first}", c.who.first,
		"{name}", c.who.name,
		"{company}", c.co.name,
		"{domain}", c.co.domain,
		"{other}", other,
		"{otherfirst}", otherFirst,
		"{seats}", fmt.Sprint(seats),
		"{extra}", fmt.Sprint(5+g.rng.IntN(16)),
		"{plan}", []string{"Growth", "Business", "Enterprise"}[g.rng.IntN(3)],
		"{renewal}", start.AddDate(0, 0, 20+g.rng.IntN(55)).Format("January 2"),
		"{due}", start.AddDate(0, 0, 14).Format("January 2"),
		"{day}", next.Format("Monday, January 2"),
		"{weekday}", weekdays[g.rng.IntN(len(weekdays))],
		"{month}", start.AddDate(0, -1, 0).Format("January"),
		"{invoice}", fmt.Sprintf("INV-%d-%05d", start.Year(), 1000+g.rng.IntN(90000)),
		"{po}", fmt.Sprintf("PO-%06d", g.rng.IntN(1000000)),
		"{amount}", "$"+thousands(amount, ",")+".00",
		"{amounteur}", thousands(amount*92/100, ".")+",00 €",
		"{vat}", fmt.Sprintf("%09d", g.rng.IntN(1000000000)),
		"{ticket}", fmt.Sprintf("#%d", 40000+g.rng.IntN(60000)),
	)
}

func thousands(n int, sep string) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + sep + s[i:]
	}
	return s
}

// customerMessage writes the customer's first message of c, or, when
// answering is set, their follow-up to it.
func (g *generator) customerMessage(c *conv, date time.Time, answering *message) *message {
	date = date.In(c.co.zone)
	from := mail.Address{Name: c.who.name, Address: c.who.local + "@" + c.co.domain}
	m := &message{
		date:    date,
		from:    from,
		to:      []mail.Address{{Name: csmName, Address: g.user}},
		subject: c.vars.Replace(c.t.subject),
		msgID:   g.msgID("mail." + c.co.domain),
		html:    c.co.html,
	}
	if c.cc != nil {
		m.cc = []mail.Address{{Name: c.cc.name, Address: c.cc.local + "@" + c.co.domain}}
	}
	body := c.t.body
	if answering != nil {
		m.subject = reSubject(answering.subject)
		m.inReplyTo = answering.msgID
		m.references = append(append([]string(nil), answering.references...), answering.msgID)
		if c.t.only != "" {
			body = c.t.followUp
		} else {
			body = "Hi {csm},\n\n" + c.t.followUp
		}
	} else if c.t.attach != noAttachment {
		m.att = g.attachment(c, date)
	}
	text := c.vars.Replace(body)
	switch so := c.t.signoff; {
	case so == "-":
		text += "\n\n" + c.who.name + "\n" + c.who.title + " | " + c.co.name
	default:
		if so == "" {
			so = englishSignoffs[g.rng.IntN(len(englishSignoffs))]
		}
		text += "\n\n" + so + "\n" + c.who.first + "\n\n" + c.who.name + "\n" + c.who.title + " | " + c.co.name
	}
	if answering != nil {
		text += "\n\n" + quote(answering)
	}
	m.text = text
	// The MX's trace fields (RFC 5321 section 4.4): what a delivered
	// message carries.
	m.returnPath = from.Address
	m.received = fmt.Sprintf("from mail.%s (mail.%s [203.0.113.%d])\r\n\tby mx.%s with ESMTPS id %012x\r\n\tfor <%s>",
		c.co.domain, c.co.domain, 1+g.rng.IntN(254), g.userDomain, g.rng.Uint64()>>16, g.user)
	return m
}

// replyMessage writes the user's reply to c's first message.
func (g *generator) replyMessage(c *conv, date time.Time) *message {
	greet := c.t.greet
	if greet == "" {
		greet = "Hi {first},"
	}
	text := c.vars.Replace(greet + "\n\n" + c.t.reply)
	text += "\n\nBest,\n" + csmFirst + "\n\n" + csmName + "\n" + csmTitle
	text += "\n\n" + quote(c.first)
	m := &message{
		date:       date.In(csmZone),
		from:       mail.Address{Name: csmName, Address: g.user},
		to:         []mail.Address{c.first.from},
		cc:         c.first.cc,
		subject:    reSubject(c.first.subject),
		msgID:      g.msgID(g.userDomain),
		inReplyTo:  c.first.msgID,
		references: []string{c.first.msgID},
		text:       text,
	}
	return m
}

// inbound turns m into an INBOX sample: read if older than three days,
// answered if the user replied.
func (g *generator) inbound(m *message, now time.Time, answered bool) sample {
	s := sample{raw: m.bytes(g), received: m.date.Add(time.Duration(2+g.rng.IntN(40)) * time.Second)}
	if s.received.After(now) {
		s.received = now
	}
	if answered || m.date.Before(now.Add(-72*time.Hour)) {
		s.flags = append(s.flags, imap.FlagSeen)
	}
	if answered {
		s.flags = append(s.flags, imap.FlagAnswered)
	}
	return s
}

func (g *generator) msgID(domain string) string {
	return fmt.Sprintf("<%016x.%08x@%s>", g.rng.Uint64(), g.rng.Uint32(), domain)
}

func reSubject(s string) string {
	if strings.HasPrefix(strings.ToLower(s), "re:") {
		return s
	}
	return "Re: " + s
}

// quote returns m's text as a reply quotes it.
func quote(m *message) string {
	var b strings.Builder
	fmt.Fprintf(&b, "On %s, %s <%s> wrote:\n", m.date.Format("Mon, Jan 2, 2006 at 3:04 PM"), m.from.Name, m.from.Address)
	for _, line := range strings.Split(wrap(m.text), "\n") {
		if line == "" || strings.HasPrefix(line, ">") {
			b.WriteString(">" + line + "\n")
		} else {
			b.WriteString("> " + line + "\n")
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// message is a message before serialisation. Texts use "\n"; bytes writes
// CRLF.
type message struct {
	date       time.Time
	from       mail.Address
	to, cc     []mail.Address
	subject    string
	msgID      string
	inReplyTo  string
	references []string
	returnPath string // inbound only, with received
	received   string
	text       string
	html       bool // also send the text as HTML (multipart/alternative)
	att        *attachment
}

type attachment struct {
	contentType string // with parameters
	filename    string
	data        []byte
}

func (m *message) bytes(g *generator) []byte {
	var b bytes.Buffer
	if m.received != "" {
		header(&b, "Return-Path", "<"+m.returnPath+">")
		b.WriteString("Received: " + m.received + "; " + m.date.Format(time.RFC1123Z) + "\r\n")
	}
	header(&b, "Date", m.date.Format(time.RFC1123Z))
	header(&b, "From", m.from.String())
	header(&b, "To", addressList(m.to))
	if len(m.cc) > 0 {
		header(&b, "Cc", addressList(m.cc))
	}
	header(&b, "Subject", encodeWords(m.subject))
	header(&b, "Message-ID", m.msgID)
	if m.inReplyTo != "" {
		header(&b, "In-Reply-To", m.inReplyTo)
		header(&b, "References", strings.Join(m.references, " "))
	}
	header(&b, "MIME-Version", "1.0")

	body := textPart(m.text)
	if m.html {
		body = alternative(g.boundary(), body, htmlPart(m.text))
	}
	if m.att != nil {
		body = mixed(g.boundary(), body, attachmentPart(m.att))
	}
	b.Write(body)
	return b.Bytes()
}

func (g *generator) boundary() string {
	return fmt.Sprintf("=_%016x%08x", g.rng.Uint64(), g.rng.Uint32())
}

func addressList(l []mail.Address) string {
	s := make([]string, len(l))
	for i, a := range l {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

// encodeWords encodes a non-ASCII header text as RFC 2047 encoded words,
// choosing Q or B, whichever is shorter, as mail clients do.
func encodeWords(s string) string {
	q := mime.QEncoding.Encode("utf-8", s)
	if bw := mime.BEncoding.Encode("utf-8", s); len(bw) < len(q) {
		return bw
	}
	return q
}

// header writes one header field folded at spaces to lines of at most 78
// characters where possible (RFC 5322 section 2.2.3).
func header(b *bytes.Buffer, name, value string) {
	line := name + ":"
	for i, word := range strings.Split(value, " ") {
		if i > 0 && word != "" && len(line)+1+len(word) > 78 {
			b.WriteString(line + "\r\n")
			line = ""
		}
		line += " " + word
	}
	b.WriteString(line + "\r\n")
}

// textPart returns headers and body of a text/plain part: 7bit when the
// wrapped text is ASCII with short lines, quoted-printable otherwise.
func textPart(text string) []byte {
	text = wrap(text) + "\n"
	var b bytes.Buffer
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\n")
	if isASCII(text) && maxLine(text) <= 76 {
		b.WriteString("Content-Transfer-Encoding: 7bit\r\n\r\n")
		b.WriteString(strings.ReplaceAll(text, "\n", "\r\n"))
		return b.Bytes()
	}
	b.WriteString("Content-Transfer-Encoding: quoted-printable\r\n\r\n")
	b.Write(qp(text))
	return b.Bytes()
}

func htmlPart(text string) []byte {
	var b bytes.Buffer
	b.WriteString("Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	doc := "<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\"></head>\n" +
		"<body><div style=\"font-family:Calibri,Arial,sans-serif;font-size:11pt\">\n" + toHTML(text) + "</div></body></html>\n"
	b.Write(qp(doc))
	return b.Bytes()
}

// toHTML renders the paragraphs of text: "- " lines as a list, runs of ">"
// lines as a blockquote, other lines separated by <br>.
func toHTML(text string) string {
	var b strings.Builder
	for _, para := range strings.Split(text, "\n\n") {
		lines := strings.Split(para, "\n")
		if allPrefixed(lines, "- ") {
			b.WriteString("<ul>\n")
			for _, l := range lines {
				b.WriteString("<li>" + html.EscapeString(l[2:]) + "</li>\n")
			}
			b.WriteString("</ul>\n")
			continue
		}
		for len(lines) > 0 {
			n := 1
			quoted := strings.HasPrefix(lines[0], ">")
			for n < len(lines) && strings.HasPrefix(lines[n], ">") == quoted {
				n++
			}
			run := lines[:n]
			lines = lines[n:]
			if quoted {
				inner := make([]string, len(run))
				for i, l := range run {
					inner[i] = strings.TrimPrefix(strings.TrimPrefix(l, ">"), " ")
				}
				b.WriteString("<blockquote style=\"margin:0 0 0 .8ex;border-left:1px solid #ccc;padding-left:1ex\">\n" +
					toHTML(strings.Join(inner, "\n")) + "</blockquote>\n")
				continue
			}
			esc := make([]string, len(run))
			for i, l := range run {
				esc[i] = html.EscapeString(l)
			}
			b.WriteString("<p>" + strings.Join(esc, "<br>\n") + "</p>\n")
		}
	}
	return b.String()
}

func allPrefixed(lines []string, prefix string) bool {
	for _, l := range lines {
		if !strings.HasPrefix(l, prefix) {
			return false
		}
	}
	return true
}

func attachmentPart(a *attachment) []byte {
	var b bytes.Buffer
	header(&b, "Content-Type", a.contentType+"; name=\""+a.filename+"\"")
	header(&b, "Content-Disposition", "attachment; filename=\""+a.filename+"\"")
	b.WriteString("Content-Transfer-Encoding: base64\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString(a.data)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n")
	return b.Bytes()
}

func alternative(boundary string, parts ...[]byte) []byte {
	return multipartBody("multipart/alternative", boundary, parts)
}

func mixed(boundary string, parts ...[]byte) []byte {
	return multipartBody("multipart/mixed", boundary, parts)
}

// multipartBody returns the Content-Type header, a blank line and the body of a
// multipart entity (RFC 2046 section 5.1); each part starts with its own
// headers.
func multipartBody(typ, boundary string, parts [][]byte) []byte {
	var b bytes.Buffer
	header(&b, "Content-Type", mime.FormatMediaType(typ, map[string]string{"boundary": boundary}))
	b.WriteString("\r\n")
	for _, p := range parts {
		b.WriteString("--" + boundary + "\r\n")
		b.Write(p)
	}
	b.WriteString("--" + boundary + "--\r\n")
	return b.Bytes()
}

func qp(s string) []byte {
	var b bytes.Buffer
	w := quotedprintable.NewWriter(&b) // writes CRLF line breaks
	w.Write([]byte(s))
	w.Close()
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// wrap breaks the lines of text at spaces to at most 72 characters, as mail
// clients do; lines without spaces (Japanese) stay whole. List items keep
// a hanging indent; quoted lines are left alone.
func wrap(text string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, ">") || utf8.RuneCountInString(line) <= 72 {
			out = append(out, line)
			continue
		}
		indent := ""
		if strings.HasPrefix(line, "- ") {
			indent = "  "
		}
		cur := ""
		for _, w := range strings.Split(line, " ") {
			switch {
			case cur == "":
				cur = w
			case utf8.RuneCountInString(cur)+1+utf8.RuneCountInString(w) > 72:
				out = append(out, cur)
				cur = indent + w
			default:
				cur += " " + w
			}
		}
		out = append(out, cur)
	}
	return strings.Join(out, "\n")
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func maxLine(s string) int {
	n := 0
	for _, l := range strings.Split(s, "\n") {
		n = max(n, len(l))
	}
	return n
}

// attachment makes the file the customer attaches to c's first message.
func (g *generator) attachment(c *conv, date time.Time) *attachment {
	switch c.t.attach {
	case usageCSV:
		return g.usageCSV(c, date)
	case inviteICS:
		return g.invite(c, date)
	case screenshotPNG:
		return &attachment{contentType: "image/png", filename: "dashboard-error.png", data: screenshot(g.rng.IntN(3))}
	}
	return nil
}

var (
	userFirst = []string{"Alex", "Maya", "Chris", "Sofia", "Ethan", "Grace", "Omar", "Hannah", "Lucas", "Zoe", "Ryan", "Emma", "Noah", "Ivy", "Jack", "Leah"}
	userLast  = []string{"Turner", "Brooks", "Patel", "Reed", "Foster", "Hayes", "Cole", "Diaz", "Ward", "Price", "Bennett", "Long"}
	teams     = []string{"Support", "Sales", "Operations", "Finance", "Engineering"}
)

func (g *generator) usageCSV(c *conv, date time.Time) *attachment {
	month := date.AddDate(0, -1, 0)
	var b strings.Builder
	b.WriteString("email,name,team,last_active,status\r\n")
	for i := 0; i < 14; i++ {
		f, l := userFirst[g.rng.IntN(len(userFirst))], userLast[g.rng.IntN(len(userLast))]
		status := "active"
		if g.rng.IntN(5) == 0 {
			status = "deactivated"
		}
		day := time.Date(month.Year(), month.Month(), 1+g.rng.IntN(28), 0, 0, 0, 0, time.UTC)
		fmt.Fprintf(&b, "%s.%s@%s,%s %s,%s,%s,%s\r\n", strings.ToLower(f), strings.ToLower(l), c.co.domain,
			f, l, teams[g.rng.IntN(len(teams))], day.Format("2006-01-02"), status)
	}
	name := "active-users-" + strings.ToLower(month.Format("January-2006")) + ".csv"
	return &attachment{contentType: "text/csv; charset=utf-8", filename: name, data: []byte(b.String())}
}

// invite is an iCalendar request (RFC 5545, RFC 5546) for the onboarding
// call, next week at 2pm in the customer's zone.
func (g *generator) invite(c *conv, date time.Time) *attachment {
	day := date.AddDate(0, 0, 8-int(date.Weekday())+g.rng.IntN(5)) // a weekday next week
	start := time.Date(day.Year(), day.Month(), day.Day(), 14, 0, 0, 0, c.co.zone).UTC()
	const stamp = "20060102T150405Z"
	org := c.who.local + "@" + c.co.domain
	lines := []string{
		"BEGIN:VCALENDAR",
		"PRODID:-//" + c.co.name + "//Scheduling//EN",
		"VERSION:2.0",
		"METHOD:REQUEST",
		"BEGIN:VEVENT",
		fmt.Sprintf("UID:%016x@%s", g.rng.Uint64(), c.co.domain),
		"DTSTAMP:" + date.UTC().Format(stamp),
		"DTSTART:" + start.Format(stamp),
		"DTEND:" + start.Add(time.Hour).Format(stamp),
		"SUMMARY:Onboarding call - " + c.co.name,
		"LOCATION:Video call",
		"ORGANIZER;CN=\"" + c.who.name + "\":mailto:" + org,
		"ATTENDEE;CN=\"" + csmName + "\";ROLE=REQ-PARTICIPANT;RSVP=TRUE:mailto:" + g.user,
		"END:VEVENT",
		"END:VCALENDAR",
	}
	return &attachment{contentType: "text/calendar; charset=utf-8; method=REQUEST", filename: "invite.ics",
		data: []byte(strings.Join(lines, "\r\n") + "\r\n")}
}

// screenshot draws a small picture of a dashboard showing an error banner.
func screenshot(variant int) []byte {
	const w, h = 320, 180
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	fill := func(x0, y0, x1, y1 int, c color.RGBA) {
		for y := y0; y < y1; y++ {
			for x := x0; x < x1; x++ {
				img.SetRGBA(x, y, c)
			}
		}
	}
	fill(0, 0, w, h, color.RGBA{247, 248, 250, 255})
	fill(0, 0, w, 24, color.RGBA{38, 50, 72, 255})
	fill(0, 24, 56, h, color.RGBA{226, 230, 236, 255})
	for i := 0; i < 3; i++ {
		fill(72+i*82, 40, 140+i*82, 80, color.RGBA{255, 255, 255, 255})
		fill(78+i*82, 66, 100+i*82+variant*6, 72, color.RGBA{120, 144, 180, 255})
	}
	fill(72, 96, 304, 128, color.RGBA{253, 236, 236, 255})
	fill(72, 96, 76, 128, color.RGBA{211, 47, 47, 255})
	fill(86, 108, 220, 116, color.RGBA{183, 28, 28, 255})
	fill(72, 140, 304, 168, color.RGBA{255, 255, 255, 255})
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		panic(err) // writing to memory cannot fail
	}
	return b.Bytes()
}

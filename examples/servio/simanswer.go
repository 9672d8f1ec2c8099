package main

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The simulated assistant answers from the menu it is given (the system
// message servio sends with a restaurant_id), by simple rules on the
// question's words: the cheapest or dearest dishes, the vegetarian or
// vegan ones (no meat or fish word in name or description; vegan also no
// dairy or egg word), drinks, desserts, spicy dishes; allergens are not on
// the menu, so it says so; anything else gets the menu's range and its
// cheapest dishes. It never names a dish the menu does not hold.

// simDish is one line of the menu in the prompt.
type simDish struct {
	name, desc string
	cents      int64
}

const menuPrefix = "The guest is asking about this menu:"

// parseMenu reads the dishes of the menu message ("- Name ($12.50): desc"
// lines), or none.
func parseMenu(msgs []chatMessage) []simDish {
	var dishes []simDish
	for _, m := range msgs {
		rest, ok := strings.CutPrefix(m.Content, menuPrefix)
		if m.Role != "system" || !ok {
			continue
		}
		for _, line := range strings.Split(rest, "\n") {
			line, ok := strings.CutPrefix(strings.TrimSpace(line), "- ")
			if !ok {
				continue
			}
			head, desc, _ := strings.Cut(line, "): ")
			head = strings.TrimSuffix(head, ")")
			i := strings.LastIndex(head, " ($")
			if i < 0 {
				continue
			}
			price, err := strconv.ParseFloat(head[i+3:], 64)
			if err != nil {
				continue
			}
			dishes = append(dishes, simDish{name: head[:i], desc: desc, cents: int64(price*100 + 0.5)})
		}
	}
	return dishes
}

var (
	meatWords    = []string{"beef", "pork", "salami", "chicken", "salmon", "tuna", "ham", "bacon", "fish", "carnitas", "ragù", "ragu", "meat", "prosciutto", "shrimp", "prawn", "anchov", "sausage", "lamb", "duck", "nigiri", "sashimi", "burger"}
	dairyWords   = []string{"mozzarella", "cheese", "mascarpone", "béchamel", "bechamel", "cream", "milk", "butter", "egg", "yogurt", "parmesan", "tiramisu"}
	drinkWords   = []string{"espresso", "coffee", "tea", "horchata", "soda", "juice", "water", "beer", "wine", "lemonade", "drink", "latte"}
	dessertWords = []string{"tiramisu", "cake", "ice cream", "gelato", "dessert", "pudding", "mochi", "brownie", "cinnamon"}
	spicyWords   = []string{"spicy", "chili", "chilli", "diavola", "jalape", "hot", "pepper"}
)

// mentions reports whether the dish's name or description holds one of words.
func (d simDish) mentions(words []string) bool {
	text := strings.ToLower(d.name + " " + d.desc)
	return slices.ContainsFunc(words, func(w string) bool { return strings.Contains(text, w) })
}

func (d simDish) String() string {
	return fmt.Sprintf("%s ($%d.%02d)", d.name, d.cents/100, d.cents%100)
}

// asks reports whether question q holds one of words.
func asks(q string, words ...string) bool {
	return slices.ContainsFunc(words, func(w string) bool { return strings.Contains(q, w) })
}

// simAnswer answers question q from dishes by the rules above.
func simAnswer(q string, dishes []simDish) string {
	if len(dishes) == 0 {
		return "send a restaurant_id with the question and I will answer from that restaurant's menu."
	}
	q = strings.ToLower(q)
	byPrice := slices.Clone(dishes)
	slices.SortStableFunc(byPrice, func(a, b simDish) int { return cmp.Compare(a.cents, b.cents) })
	pick := func(keep func(simDish) bool) []simDish {
		var out []simDish
		for _, d := range byPrice {
			if keep(d) {
				out = append(out, d)
			}
		}
		return out
	}
	list := func(ds []simDish, none string) string {
		if len(ds) == 0 {
			return none
		}
		names := make([]string, 0, 3)
		for _, d := range ds[:min(len(ds), 3)] {
			names = append(names, d.String())
		}
		return strings.Join(names, ", ")
	}
	switch {
	case asks(q, "cheap", "budget", "inexpensive", "lowest price", "least expensive", "affordable"):
		return "the cheapest dishes are " + list(byPrice, "") + "."
	case asks(q, "expensive", "priciest", "premium", "dearest"):
		dearest := slices.Clone(byPrice)
		slices.Reverse(dearest)
		return "the most expensive dishes are " + list(dearest, "") + "."
	case asks(q, "vegan"):
		return "vegan, going by the menu's descriptions: " + list(pick(func(d simDish) bool { return !d.mentions(meatWords) && !d.mentions(dairyWords) }), "nothing on this menu looks vegan") + "; please confirm with staff."
	case asks(q, "vegetarian", "veggie", "meat-free", "meatless", "no meat"):
		return "vegetarian, going by the menu's descriptions: " + list(pick(func(d simDish) bool { return !d.mentions(meatWords) }), "nothing on this menu looks vegetarian") + "."
	case asks(q, "drink", "beverage", "coffee", "thirsty"):
		return "to drink: " + list(pick(func(d simDish) bool { return d.mentions(drinkWords) }), "the menu lists no drinks") + "."
	case asks(q, "dessert", "sweet"):
		return "for dessert: " + list(pick(func(d simDish) bool { return d.mentions(dessertWords) }), "the menu lists no desserts") + "."
	case asks(q, "spicy", "hot"):
		return "spicy: " + list(pick(func(d simDish) bool { return d.mentions(spicyWords) }), "nothing on this menu is marked spicy") + "."
	case asks(q, "gluten", "allerg", "nut", "lactose"):
		return "the menu does not list allergens; please ask staff before ordering."
	}
	return fmt.Sprintf("the menu has %d dishes from %s to %s; for example %s.",
		len(dishes), byPrice[0].String(), byPrice[len(byPrice)-1].String(), list(byPrice, ""))
}

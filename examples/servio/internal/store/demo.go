package store

import (
	"context"
	"database/sql"
	"time"
)

// DemoUser is a login created with the demo data.
type DemoUser struct {
	Email, Name, Role, Password string
	// Restaurant is the demo restaurant (1-based, in the order they are
	// created, which on an empty database is also their id) the user works
	// for; 0 for the admin.
	Restaurant int
}

// DemoUsers are the accounts the demo data creates (README's curl tour): an
// admin for every restaurant, and a manager and a staff member for each
// demo restaurant. The password of all is "servio-demo".
var DemoUsers = []DemoUser{
	{Email: "admin@servio.dev", Name: "Ada Admin", Role: RoleAdmin, Password: "servio-demo"},
	{Email: "manager@servio.dev", Name: "Maria Manager", Role: RoleManager, Password: "servio-demo", Restaurant: 1},
	{Email: "staff@servio.dev", Name: "Sam Staff", Role: RoleStaff, Password: "servio-demo", Restaurant: 1},
	{Email: "manager2@servio.dev", Name: "Mei Manager", Role: RoleManager, Password: "servio-demo", Restaurant: 2},
	{Email: "staff2@servio.dev", Name: "Sora Staff", Role: RoleStaff, Password: "servio-demo", Restaurant: 2},
	{Email: "manager3@servio.dev", Name: "Marco Manager", Role: RoleManager, Password: "servio-demo", Restaurant: 3},
	{Email: "staff3@servio.dev", Name: "Sofia Staff", Role: RoleStaff, Password: "servio-demo", Restaurant: 3},
}

type demoDish struct {
	name, desc       string
	price            int64
	stock, reorderAt int
}

var demoRestaurants = []struct {
	name   string
	dishes []demoDish
}{
	{"Trattoria Roma", []demoDish{
		{"Margherita", "Tomato, mozzarella, basil", 1150, 40, 10},
		{"Diavola", "Spicy salami, chili", 1350, 25, 10},
		{"Lasagne", "Beef ragù, béchamel", 1490, 6, 8},
		{"Tiramisu", "Mascarpone, espresso", 650, 12, 5},
		{"Espresso", "Double shot", 290, 200, 20},
	}},
	{"Sakura Sushi", []demoDish{
		{"Salmon nigiri", "2 pieces", 590, 50, 15},
		{"Tuna roll", "8 pieces", 890, 3, 10},
		{"Miso soup", "Tofu, wakame", 390, 80, 10},
		{"Edamame", "Sea salt", 450, 60, 10},
	}},
	{"Taco Loco", []demoDish{
		{"Carnitas taco", "Slow-cooked pork", 450, 70, 20},
		{"Veggie burrito", "Beans, rice, peppers", 990, 30, 10},
		{"Guacamole", "With tortilla chips", 650, 4, 6},
		{"Horchata", "Rice, cinnamon", 350, 40, 10},
	}},
}

// LoadDemo fills an empty database with a few restaurants, their menus and
// stock, the DemoUsers (hash turns a password into its stored form) and some
// orders, in one transaction. It does nothing, and returns false, when any
// restaurant or user exists; on PostgreSQL an advisory lock (per database
// and schema) stops two instances starting together from both loading it.
func (s *Store) LoadDemo(ctx context.Context, hash func(password string) (string, error)) (bool, error) {
	loaded := false
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if s.d == Postgres {
			if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock("+lockKeySQL("demo")+")"); err != nil {
				return err
			}
		}
		var n int
		if err := tx.QueryRowContext(ctx, "SELECT (SELECT COUNT(*) FROM restaurants) + (SELECT COUNT(*) FROM users)").Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		base := time.Now().Add(-2 * time.Hour)
		statuses := []string{StatusCompleted, StatusCompleted, StatusReady, StatusPreparing, StatusPending}
		rids := make([]int64, len(demoRestaurants))
		for ri, r := range demoRestaurants {
			var rid int64
			if err := tx.QueryRowContext(ctx, rebind(s.d, "INSERT INTO restaurants (name) VALUES (?) RETURNING id"), r.name).Scan(&rid); err != nil {
				return err
			}
			rids[ri] = rid
			ids := make([]int64, len(r.dishes))
			for i, d := range r.dishes {
				if err := tx.QueryRowContext(ctx, s.q.menuItemInsert, rid, d.name, d.desc, d.price, true).Scan(&ids[i]); err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, s.q.inventoryInsert, rid, ids[i], d.name, d.stock, d.reorderAt); err != nil {
					return err
				}
			}
			for k, st := range statuses {
				a, b := k%len(r.dishes), (k+1)%len(r.dishes)
				qa, qb := 1+k%2, 1
				total := r.dishes[a].price*int64(qa) + r.dishes[b].price*int64(qb)
				var oid int64
				if err := tx.QueryRowContext(ctx, rebind(s.d, `INSERT INTO orders (restaurant_id, customer_name, status, total_cents, created_at, updated_at)
					VALUES (?, ?, ?, ?, ?, ?) RETURNING id`), rid, []string{"Ada", "Linus", "Grace", "Ken", "Barbara"}[k], st, total,
					s.timeArg(base.Add(time.Duration(k)*20*time.Minute)), s.timeArg(base.Add(time.Duration(k)*20*time.Minute))).Scan(&oid); err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, rebind(s.d, s.q.orderItemsHead+valueRows(2, 5)),
					oid, ids[a], r.dishes[a].name, qa, r.dishes[a].price,
					oid, ids[b], r.dishes[b].name, qb, r.dishes[b].price); err != nil {
					return err
				}
			}
		}
		for _, u := range DemoUsers {
			h, err := hash(u.Password)
			if err != nil {
				return err
			}
			var rid any
			if u.Restaurant > 0 {
				rid = rids[u.Restaurant-1]
			}
			if _, err := tx.ExecContext(ctx, rebind(s.d, "INSERT INTO users (email, name, role, password_hash, restaurant_id) VALUES (?, ?, ?, ?, ?)"),
				u.Email, u.Name, u.Role, h, rid); err != nil {
				return err
			}
		}
		loaded = true
		return nil
	})
	return loaded, err
}

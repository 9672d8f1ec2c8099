package store

import (
	"context"
	"database/sql"
	"errors"
)

// UserByEmail returns the live user with this email, or ErrNotFound.
func (s *Store) UserByEmail(ctx context.Context, email string) (User, error) {
	var u User
	var rid sql.NullInt64
	err := s.db.QueryRowContext(ctx, s.q.userByEmail, email).Scan(&u.ID, &u.Email, &u.Name, &u.Role, &u.PasswordHash, &rid)
	if errors.Is(err, sql.ErrNoRows) {
		return u, ErrNotFound
	}
	u.RestaurantID = rid.Int64
	return u, err
}

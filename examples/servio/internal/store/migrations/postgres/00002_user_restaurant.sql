-- +goose Up
-- A user works for one restaurant (manager or staff) or, with role admin
-- and no restaurant, for all of them. Users created before this migration
-- have no restaurant and reach none until one is set (fail closed).
ALTER TABLE users ADD COLUMN restaurant_id BIGINT REFERENCES restaurants (id);

-- +goose Down
ALTER TABLE users DROP COLUMN restaurant_id;

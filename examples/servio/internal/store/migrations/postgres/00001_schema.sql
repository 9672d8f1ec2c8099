-- +goose Up
CREATE TABLE restaurants (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at TIMESTAMPTZ
);

CREATE TABLE menu_items (
    id           BIGSERIAL PRIMARY KEY,
    restaurant_id BIGINT NOT NULL REFERENCES restaurants (id),
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    price_cents  BIGINT NOT NULL CHECK (price_cents >= 0),
    is_available BOOLEAN NOT NULL DEFAULT TRUE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at   TIMESTAMPTZ
);

-- The seed's "active menu items" index; it also serves the menu query's ORDER BY name, price.
CREATE INDEX idx_menu_items_active ON menu_items (restaurant_id, name, price_cents)
    WHERE is_available AND deleted_at IS NULL;

-- One stock row per menu item: POST /orders decrements it.
CREATE TABLE inventory_items (
    id               BIGSERIAL PRIMARY KEY,
    restaurant_id    BIGINT NOT NULL REFERENCES restaurants (id),
    menu_item_id     BIGINT NOT NULL UNIQUE REFERENCES menu_items (id),
    name             TEXT NOT NULL,
    current_quantity INTEGER NOT NULL CHECK (current_quantity >= 0),
    reorder_point    INTEGER NOT NULL DEFAULT 0 CHECK (reorder_point >= 0),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at       TIMESTAMPTZ
);

CREATE INDEX idx_inventory_low_stock_active ON inventory_items (restaurant_id, current_quantity)
    WHERE deleted_at IS NULL AND current_quantity < reorder_point;

CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL DEFAULT 'staff',
    password_hash TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at    TIMESTAMPTZ
);

CREATE TABLE orders (
    id            BIGSERIAL PRIMARY KEY,
    restaurant_id BIGINT NOT NULL REFERENCES restaurants (id),
    customer_name TEXT NOT NULL DEFAULT '',
    status        TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'preparing', 'ready', 'completed', 'cancelled')),
    total_cents   BIGINT NOT NULL CHECK (total_cents >= 0),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at    TIMESTAMPTZ
);

-- The seed's index: orders by restaurant and status, live rows only.
CREATE INDEX idx_orders_restaurant_status_not_deleted ON orders (restaurant_id, status)
    WHERE deleted_at IS NULL;
-- Keyset pagination: newest first, (created_at, id) as the cursor.
CREATE INDEX idx_orders_restaurant_created ON orders (restaurant_id, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;
-- Keyset pagination filtered by status.
CREATE INDEX idx_orders_restaurant_status_created ON orders (restaurant_id, status, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;

CREATE TABLE order_items (
    id               BIGSERIAL PRIMARY KEY,
    order_id         BIGINT NOT NULL REFERENCES orders (id),
    menu_item_id     BIGINT NOT NULL REFERENCES menu_items (id),
    name             TEXT NOT NULL,
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_cents BIGINT NOT NULL CHECK (unit_price_cents >= 0)
);

CREATE INDEX idx_order_items_order ON order_items (order_id);

-- +goose Down
DROP TABLE order_items;
DROP TABLE orders;
DROP TABLE users;
DROP TABLE inventory_items;
DROP TABLE menu_items;
DROP TABLE restaurants;

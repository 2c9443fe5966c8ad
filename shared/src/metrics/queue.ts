/** A bounded FIFO that drops its oldest item when full (and says which). */
export class DropOldestQueue<T> {
  private readonly items: (T | undefined)[];
  private head = 0;
  private size = 0;
  /** Items dropped to make room, in all. */
  dropped = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`queue capacity ${capacity}`);
    this.items = new Array<T | undefined>(capacity);
  }

  get length(): number {
    return this.size;
  }

  /** Adds `item`; returns the item dropped to make room, if any. */
  push(item: T): T | undefined {
    let lost: T | undefined;
    if (this.size === this.capacity) {
      lost = this.shift();
      this.dropped++;
    }
    this.items[(this.head + this.size) % this.capacity] = item;
    this.size++;
    return lost;
  }

  shift(): T | undefined {
    if (this.size === 0) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head = (this.head + 1) % this.capacity;
    this.size--;
    return item;
  }

  peek(): T | undefined {
    return this.size === 0 ? undefined : this.items[this.head];
  }

  /** The item `i` places after the oldest (0: the oldest), or undefined past the end. */
  at(i: number): T | undefined {
    return i >= 0 && i < this.size ? this.items[(this.head + i) % this.capacity] : undefined;
  }

  /** Items oldest first (for replay); does not remove them. */
  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = 0; i < this.size; i++) yield this.items[(this.head + i) % this.capacity]!;
  }
}

import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';

/** Whether the read-model database answers: the health check's only question to it. */
@Injectable()
export class DatabaseProbe {
  constructor(private readonly dataSource: DataSource) {}

  async problem(): Promise<string | null> {
    try {
      await this.dataSource.query('SELECT 1');
      return null;
    } catch (error) {
      return (error as Error).message;
    }
  }
}
